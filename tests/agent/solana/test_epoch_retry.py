"""PoolBook.refresh_epoch: a node that does not answer getEpochInfo is asked again EPOCH_RETRY_SLOTS later,
not at every slot (the ask is awaited on the account stream's loop); an answer sets when to ask next."""

from __future__ import annotations

import asyncio

from mevagent.solana.book import EPOCH_RETRY_SLOTS, PoolBook
from mevagent.solana.token2022 import EpochInfo


class Node:
    def __init__(self, answer: EpochInfo | None) -> None:
        self.answer, self.asked = answer, 0

    async def epoch_info(self) -> EpochInfo:
        self.asked += 1
        if self.answer is None:
            raise ConnectionError("getEpochInfo: no answer")
        return self.answer


def test_a_silent_node_is_asked_again_after_the_retry_slots_and_an_answer_sets_the_next_epoch() -> None:
    book = PoolBook()
    silent = Node(None)
    assert book.epoch_due(100)
    assert asyncio.run(book.refresh_epoch(silent, 100)) == []
    assert not any(book.epoch_due(s) for s in range(100, 100 + EPOCH_RETRY_SLOTS))  # before: every slot
    assert book.epoch_due(100 + EPOCH_RETRY_SLOTS)
    info = EpochInfo.model_validate({"epoch": 7, "slotIndex": 10, "slotsInEpoch": 432, "absoluteSlot": 3034})
    asyncio.run(book.refresh_epoch(Node(info), 125))
    assert book.epoch == 7 and book.next_epoch_slot == info.next_epoch_slot
    assert not book.epoch_due(info.next_epoch_slot - 1) and book.epoch_due(info.next_epoch_slot)
