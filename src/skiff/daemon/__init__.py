"""skiffd: configuration, and the one place where everything is wired together."""
