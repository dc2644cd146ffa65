"""BETH files: loading, writing, literal fields and synthetic hosts."""
