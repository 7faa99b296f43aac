"""The Kafka worker: the Faust app, batched intake and recovery, the batch scorer, record
batches out, Kafka clients and topics, metrics, the HTTP API and the settings."""
