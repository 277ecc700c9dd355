"""Dockyard against CNCF Distribution, side by side on loopback: `python -m bench`, `make bench`.

Both servers are started here as a user would start them, each on a free 127.0.0.1 port with a
fresh temporary data folder, every benchmark runs against both alternately (A B, B A, A B ...),
and the medians, their ratio Dockyard/Distribution and a JSON file (bench/results/latest.json)
come out.
"""
