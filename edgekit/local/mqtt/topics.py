"""Topic names, topic filters and the subscription tree (MQTT spec 4.7).

Rules worth remembering:
- ``+`` matches exactly one level, ``#`` the parent level and any number below
  it, and both must fill a whole level (``#`` only as the last one).
- Wildcards in the first level never match a topic starting with ``$``
  (``#`` does not see ``$aws/things/x``; ``$aws/#`` does). Clients may publish
  to ``$`` topics; IoT Core's reserved topics start with ``$aws/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

SHARED_PREFIX = "$share/"


def topic_name_error(topic: str) -> str | None:
    """Why ``topic`` cannot be published to, or None if it is a valid topic name."""
    if not topic:
        return "a topic name must not be empty"
    if "+" in topic or "#" in topic:
        return "a topic name must not contain the wildcards + or #"
    return None


def topic_filter_error(topic_filter: str) -> str | None:
    """Why ``topic_filter`` cannot be subscribed to, or None if it is a valid filter."""
    if not topic_filter:
        return "a topic filter must not be empty"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "# must be a whole level and the last one"
        if "+" in level and level != "+":
            return "+ must be a whole level"
    return None


def matches(topic_filter: str, topic: str) -> bool:
    """True if ``topic_filter`` (valid) matches the topic name ``topic`` (valid)."""
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    if topic.startswith("$") and f_levels[0] in ("+", "#"):
        return False
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


@dataclass
class _Node(Generic[T]):
    children: dict[str, _Node[T]] = field(default_factory=dict)
    entries: dict[str, T] = field(default_factory=dict)  # client id -> subscription


class SubscriptionTree(Generic[T]):
    """Topic filters of every session in a trie of levels, for matching in O(depth).

    Each filter holds at most one entry per client id (a repeated SUBSCRIBE
    replaces it, as the spec requires).
    """

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, topic_filter: str, client_id: str, entry: T) -> bool:
        """Store ``entry``; True if the client already had this filter (now replaced)."""
        node = self._root
        for level in topic_filter.split("/"):
            node = node.children.setdefault(level, _Node())
        existed = client_id in node.entries
        node.entries[client_id] = entry
        self._count += not existed
        return existed

    def remove(self, topic_filter: str, client_id: str) -> bool:
        """Drop the client's entry for ``topic_filter``; False if there was none."""
        path = [self._root]
        for level in topic_filter.split("/"):
            child = path[-1].children.get(level)
            if child is None:
                return False
            path.append(child)
        if path[-1].entries.pop(client_id, None) is None:
            return False
        self._count -= 1
        levels = topic_filter.split("/")
        for depth in range(len(levels), 0, -1):  # prune empty branches
            node = path[depth]
            if node.entries or node.children:
                break
            del path[depth - 1].children[levels[depth - 1]]
        return True

    def match(self, topic: str) -> Iterator[tuple[str, T]]:
        """Every (client id, entry) whose filter matches the topic name ``topic``."""
        levels = topic.split("/")
        dollar = topic.startswith("$")
        nodes = [self._root]
        for i, level in enumerate(levels):
            wild = not (dollar and i == 0)
            following: list[_Node[T]] = []
            for node in nodes:
                if wild:
                    hash_node = node.children.get("#")
                    if hash_node is not None:
                        yield from hash_node.entries.items()
                    plus = node.children.get("+")
                    if plus is not None:
                        following.append(plus)
                exact = node.children.get(level)
                if exact is not None:
                    following.append(exact)
            nodes = following
            if not nodes:
                return
        for node in nodes:
            yield from node.entries.items()
            hash_node = node.children.get("#")  # "a/#" also matches "a"
            if hash_node is not None:
                yield from hash_node.entries.items()
