"""A process per loaded model: the router talks to it over a pipe, it runs the pipeline."""
