"""OCI distribution (registry v2) client: auth, pull by digest, push what is missing."""
