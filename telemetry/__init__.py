"""The input contract: raw records decoded into events, other shapes mapped onto it, the bounds
on what is kept, and files put in time order. Pure: no Faust, no aiokafka."""
