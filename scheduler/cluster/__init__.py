"""Cluster mode (``serve --cluster nats://HOST:PORT``): nodes that each serve the whole API and
share functions, limits, accepted Event invocations and their liveness through NATS JetStream.

    POST …/invocations (Event) on any node ─► JetStream stream LAMBDA_EVENTS (202 once it acked)
        ─► durable pull consumer per function ─► pulled by the nodes with room ─► the dispatcher
        ─► ack after the run · republished for a retry · redelivered if the node died
    every node ─► KV bucket lambda_nodes (heartbeat with a TTL) ─► GET /cluster
    Scheduler.gate ─► KV bucket lambda_limits (compare-and-set) · Scheduler.router ─► lambda.warm.<fn>
    API changes to functions ─► KV lambda_functions + Object Store lambda_code ─► replayed elsewhere

| module | job |
|---|---|
| ``link`` | the connection to NATS, the stream and buckets this mode uses, the node's name |
| ``codec`` | an ``Event`` as a JetStream message and back |
| ``events`` | ``ClusterEventQueue``: the event queue backed by the stream, pulled by room |
| ``nodes`` | heartbeats in a KV bucket, and the list of live nodes (GET /cluster) |
| ``limits`` | reserved and account concurrency across nodes: a compare-and-set KV ledger |
| ``forward`` | warm-first routing of synchronous invocations over request/reply |
| ``registry`` | functions created, updated, deleted on one node, replayed by the others |
| ``node`` | one node's part: joins, attaches to the application, leaves |

Without ``--cluster`` nothing here is imported: a single node keeps its SQLite store and needs
no NATS server.
"""
