"""An in-memory flash for power-cut tests: every byte written and every rename or removal is
one step, and the power fails after a chosen number of steps (both interpreters).

Bytes written before the cut stay written (a torn file); a rename is atomic, as on LittleFS.
"""


class PowerCut(Exception):
    """The simulated power failed."""


class CutFs:
    """The Store's filesystem interface over a dict of path -> bytes."""

    def __init__(self, files=None, budget=-1):
        self.files = files if files is not None else {}
        self.budget = budget  # steps left before the cut; -1 never cuts
        self.steps = 0

    def _step(self, n=1):
        """Spends up to n steps; returns how many happened before a cut (then raises)."""
        if self.budget < 0:
            self.steps += n
            return n
        done = min(n, self.budget)
        self.budget -= done
        self.steps += done
        return done

    def read(self, path):
        data = self.files.get(path)
        return None if data is None else bytes(data)

    def write(self, path, data):
        self.files[path] = b""  # open("wb") truncates
        done = self._step(len(data))
        self.files[path] = bytes(data[:done])
        if done < len(data) or self.budget == 0:
            raise PowerCut()

    def rename(self, old, new):
        if self._step() < 1:
            raise PowerCut()
        self.files[new] = self.files.pop(old)

    def remove(self, path):
        if self._step() < 1:
            raise PowerCut()
        self.files.pop(path, None)
