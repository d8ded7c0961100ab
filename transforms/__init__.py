"""Pure DataFrame -> DataFrame logic of the telco-ra controls: no I/O, no SparkSession creation."""
