"""Hospital I/O: DICOM intake, the durable store, the pipeline, routing, delivery, CLI."""
