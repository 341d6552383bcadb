"""Development helpers shipped with the package: a local S3-compatible server for the demo
and the tests. Not used by workers, the scheduler or the API."""
