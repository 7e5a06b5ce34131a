"""Compatibility layers that run other web UIs' extensions on sdweb's own extension API."""
