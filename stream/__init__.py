"""The Kafka side: settings, codecs, the Faust worker, the CLI and the demo."""
