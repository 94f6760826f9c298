"""Nix-style store paths: names, NAR hashing, references and closures."""
