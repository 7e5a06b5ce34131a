import sys

print("install.py: a requirement could not be built")
sys.exit(1)
