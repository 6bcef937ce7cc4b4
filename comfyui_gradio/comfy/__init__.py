"""Everything that talks to a server: the HTTP and WebSocket seam to ComfyUI, the wire vocabulary,
jobs that follow a prompt to its end, collecting their outputs, other kinds of backend, and a pool.

    transport.py  the WebSocket connector interface and its websocket-client implementation
    events.py     wire messages parsed once (MessageType, WireMessage, PreviewFrame) and job events
    client.py     ComfyClient: HTTP calls, uploads, submit/run (one long-lived httpx.Client per server)
    server.py     JobServer: the narrow interface a Job uses; ComfyClient satisfies it
    hub.py        SocketHub: the one WebSocket per server, its messages handed to each job by prompt id
    handle.py     JobOutcome: events, outcome and done-callbacks shared by every job handle
    job.py        Job: the handle (events, result, cancel) and the trackers (socket, polling, failover)
    collect.py    collect_outputs: a /history entry in, files in the job folder out
    results.py    RunResult and OutputFile
    pool.py       ComfyPool: health checks, routing by estimated wait, failover
    sources.py    WorkflowSources: a dict, an http(s) URL or a RunningHub id as a local workflow file
    runninghub.py RunningHubClient: RunningHub's task API (upload, create, status, outputs)
    runninghub_backend.py  RunningHubBackend: a tab run as a RunningHub task
    backend.py    Backend and JobHandle (any kind), KINDS, the job handle the remote kinds share
    v2.py         V2Backend: Comfy API v2 (Comfy Cloud, comfy-api-proxy) through comfy-sdk
    viewcomfy.py  ViewComfyBackend: ViewComfy serverless deployments
    batch.py      Batch, BatchItem: one workflow over many values (map), bounded, in input order
    aio.py        AsyncComfyClient, AsyncComfyPool, AsyncJob: the same, for asyncio (wrapping the above)
    queue_watch.py  QueueWatch: a server's queue as it is now (status socket, GET /queue), for routing

It builds on ``forms`` (a tab spec and a prepared prompt) and never imports Gradio.
"""
