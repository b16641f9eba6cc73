"""What leaves hakwatch: the Prometheus collector and metric names, the HTTP server, /debug/pprof."""
