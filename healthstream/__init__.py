"""The healthstream application: the command line, the offline tools, the development tools
and the page, built on the Kafka worker (``stream``), the input contract (``telemetry``), the
scoring core (``windows``, ``scoring``) and the destinations (``sinks``)."""
