"""The command service: one function per command a person or operator gives."""
