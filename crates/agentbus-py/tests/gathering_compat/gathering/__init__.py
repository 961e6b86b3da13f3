"""The GatheRing test files import `gathering.events`; here that is agentbus."""
