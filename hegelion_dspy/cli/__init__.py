"""Command-line front ends: thin layers that parse arguments, call the library and print."""
