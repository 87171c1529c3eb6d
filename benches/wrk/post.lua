wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"tool":"read","params":{"path":"/home/dev/project/README.md"},"agent":{"id":"main","run_id":"bench"}}'
