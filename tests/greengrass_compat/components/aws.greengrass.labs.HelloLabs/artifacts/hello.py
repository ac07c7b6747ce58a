import sys

greeting, thing = sys.argv[1], sys.argv[2]
print(f"{greeting}, {thing}!", flush=True)
