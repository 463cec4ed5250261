"""Several model servers behind one endpoint: members, routing by prompt prefix, warm-up."""
