"""Container networking: bridge driver, IPAM, port publishing, embedded DNS."""
