"""Fetching from upstream registries for the pull-through cache: the OCI distribution protocol
as a client (`client`), its authentication (`auth`), upstream URL rules (`urls`) and streaming
one upstream blob to a client and the store at once (`tee`)."""
