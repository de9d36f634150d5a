"""A worker keeps the messages it held when Redis dies, and queues them again once Redis is back.

The failure (kombu 5.7.0 with celery 5.7.0, the newest on PyPI): a worker holds an unacknowledged
message (an ETA task such as the leaderboard refit waiting for its countdown, or a running
``acks_late`` training job), Redis dies. Celery's consumer collects the broken connection (which
drops the transport's ``client``) and then closes it; closing the channel restores the unacked
messages, which needs a new Redis pool, whose parameters are read from the dropped ``client``:
``AttributeError: 'NoneType' object has no attribute 'hostname'`` in
``kombu/transport/redis.py`` ``_connparams``. The AttributeError is not a connection error, so
celery logs "Unrecoverable error" and the whole worker (with its embedded beat) exits. Upstream:
the same failure from another close path (a channel closed after its transport lost its client)
is celery/kombu#582 ("Error on restarting Gossip", ``_connparams`` → ``conninfo.hostname``); the
consumer's teardown on connection loss was reworked in celery/celery#10242 and #10570 (for
celery/celery#9705). No kombu release past 5.7.0 exists, so it is worked around here.

Even without the crash the message would be lost: kombu restores an unacked message from its copy
in Redis' ``unacked`` hash, which a Redis restarted without persistence no longer has.

What :func:`install` (called by ``config.celery``) changes, for the Redis transport only:

* ``QoS.restore_unacked``: each held message is restored as before while Redis answers; when it
  cannot be (the transport has no client any more, or a connection error), the message's payload,
  exchange and routing key are kept in this process instead of raising.
* A consumer bootstep (:class:`RequeueHeld`, after the task consumer has declared its queues) runs
  each time the consumer (re)connects: each kept message goes back to the head of its queue in one
  Redis transaction that also removes any copy left under its tag in the ``unacked`` hash and index
  (a Redis that kept its data), so it is delivered once, marked redelivered. A message that cannot
  be put back yet stays kept for the next connection.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from celery import bootsteps
from kombu.transport import redis as kombu_redis
from redis import exceptions as redis_errors

logger = logging.getLogger(__name__)

_UNREACHABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


@dataclass(frozen=True)
class Held:
    tag: str
    payload: dict
    exchange: str
    routing_key: str


_kept: list[Held] = []
_lock = threading.Lock()


def _restore_unacked(self, client=None):
    """kombu's ``QoS.restore_unacked``, keeping in memory what an unreachable Redis cannot take back."""
    left: list[Held] = []
    for tag, message in list(self._delivered.items()):
        transport = self.channel.connection
        if transport is not None and transport.client is not None and not left:
            try:
                self.restore_by_tag(tag, client=client)
                continue
            except _UNREACHABLE:
                pass
        delivery = message.delivery_info
        left.append(Held(str(tag), message._raw, delivery.get("exchange", ""), delivery.get("routing_key", "")))
    self._delivered.clear()
    if left:
        logger.warning("broker unreachable: keeping %d unacknowledged message(s) to queue again on reconnect",
                       len(left))
        with _lock:
            _kept.extend(left)


def requeue_kept(channel) -> int:
    """Put the kept messages back on ``channel``'s Redis (see the module docstring); returns how many."""
    done = 0
    with _lock:
        while _kept:
            held = _kept[0]

            def put_back(pipe, held=held):
                pipe.multi()
                pipe.zrem(channel.unacked_index_key, held.tag)
                pipe.hdel(channel.unacked_key, held.tag)
                channel._do_restore_message(held.payload, held.exchange, held.routing_key, pipe, leftmost=True)

            try:
                with channel.conn_or_acquire() as client:
                    client.transaction(put_back, channel.unacked_key)
            except _UNREACHABLE:
                logger.warning("could not queue %d kept message(s) again yet", len(_kept), exc_info=True)
                break
            _kept.pop(0)
            done += 1
    if done:
        logger.warning("queued again %d message(s) held when the broker was lost", done)
    return done


class RequeueHeld(bootsteps.StartStopStep):
    """Consumer step: after each (re)connection, queue again what the last connection held."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c):
        channel = c.connection.default_channel if c.connection is not None else None
        if isinstance(channel, kombu_redis.Channel):
            requeue_kept(channel)


def install(app) -> None:
    kombu_redis.QoS.restore_unacked = _restore_unacked
    app.steps["consumer"].add(RequeueHeld)
