"""Test plans: YAML data validated into models before anything is sent on a bus."""
