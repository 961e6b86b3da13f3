"""Shim: the original tests import gathering.events; agentbus is a drop-in."""
from agentbus import *  # noqa: F401,F403
