"""A :class:`can.Message` that python-can's ``virtual`` bus copies cheaply.

python-can's ``virtual`` bus deep-copies every frame sent for every other bus on the channel, and
``Message.__deepcopy__`` copies the payload through ``copy.deepcopy``'s generic reduce path:
profiled, about a fifth of the virtual vehicle's lockstep loop, and for the runner's own frames
(the ``VCU_*`` stimuli, ~240,000 in the Heihe plan) 4 % of a run's CPU time (README, "Figures").
Copying the bytearray directly gives the receiver the same plain :class:`can.Message`, faster.
Both sides of a lockstep run send these: the virtual vehicle's restbus
(:mod:`virtual_bus.ecus.restbus`) and the runner's stimuli (:func:`bench.stimuli.to_can_message`).
"""

from __future__ import annotations

import can


class Frame(can.Message):
    """A :class:`can.Message` whose deep copy is a plain, equal :class:`can.Message`."""

    __slots__ = ()

    def __deepcopy__(self, memo: dict | None) -> can.Message:
        return can.Message(
            timestamp=self.timestamp,
            arbitration_id=self.arbitration_id,
            is_extended_id=self.is_extended_id,
            is_remote_frame=self.is_remote_frame,
            is_error_frame=self.is_error_frame,
            channel=self.channel,  # a str or None: immutable
            dlc=self.dlc,
            data=bytearray(self.data),
            is_fd=self.is_fd,
            is_rx=self.is_rx,
            bitrate_switch=self.bitrate_switch,
            error_state_indicator=self.error_state_indicator,
        )
