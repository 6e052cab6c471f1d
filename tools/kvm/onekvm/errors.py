"""Exceptions that carry meaning for the command line."""


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit status 2."""


class GuestError(Exception):
    """The guest or the hypervisor did something the VMM cannot continue from."""
