"""The people's door (shared/spec/api.md): an HTTP API over the command service and the read side.

Authorization happens here, with domain/access.py's role table; the workflows' validators keep judging
the rules of each step, so no door can skip them. Who acted is who authenticated: no body field, header
or flag names the actor of a human step.
"""
