"""Cluster mode's decisions: which nodes are alive, and which node serves a function. Pure
functions over a snapshot of node records and a time; the store and the heartbeat loop that
produce the snapshot live elsewhere."""
