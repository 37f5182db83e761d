"""The Ansible engine: roles/ interpret the same host plan as the pyinfra engine (docs/deploy.md)."""
