"""The agent's .proto source and the script that generates its Python modules."""
