"""The lower and emit passes: an inferred tree to boto3 requests, job names and the Plan message."""
