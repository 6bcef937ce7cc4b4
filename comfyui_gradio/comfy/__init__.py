"""Everything that talks to a ComfyUI server: the HTTP and WebSocket seam, the wire vocabulary,
jobs that follow a prompt to its end, collecting their outputs, and a pool of servers.

    transport.py  the WebSocket connector interface and its websocket-client implementation
    events.py     wire messages parsed once (MessageType, WireMessage, PreviewFrame) and job events
    client.py     ComfyClient: HTTP calls, uploads, submit/run (one long-lived httpx.Client per server)
    server.py     JobServer: the narrow interface a Job uses; ComfyClient satisfies it
    job.py        Job: the handle (events, result, cancel) and the trackers (socket, polling, failover)
    collect.py    collect_outputs: a /history entry in, files in the job folder out
    results.py    RunResult and OutputFile
    pool.py       ComfyPool: health checks, routing by estimated wait, failover
    queue_watch.py  QueueWatch: a server's queue as it is now (status socket, GET /queue), for routing

It builds on ``forms`` (a tab spec and a prepared prompt) and never imports Gradio.
"""
