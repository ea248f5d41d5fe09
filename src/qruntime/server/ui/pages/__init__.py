"""The dashboard's pages: each module here that defines ``router`` is served (see `ui`)."""
