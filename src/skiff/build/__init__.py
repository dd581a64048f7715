"""The Dockerfile frontend (parse, expand) and the builder; RUN steps are containers run through the engine."""
