"""telco-ra entry points: thin jobs that read, call transforms and write."""
