"""The in-place check of a call's inputs: the judge writes them to a file that the worker maps shared.

The judge's side, `SharedInputs`: the input tensors of one call in a file of the judge's, compared
with the judge's own copies after the call. The worker's side, `mapped`: those tensors as views of
the file, so that whatever the learner's function does to them in place lands where the judge looks.
"""

import os


class SharedInputs:
    """The input tensors of one call, written by the judge to a file of its own that the worker maps
    shared (`mapped`): what the learner's function does to them in place lands in the file,
    and the judge compares the file with its own copies after the call (reading through its own
    descriptor, so a file replaced or cut short reads as changed). The comparison is the judge's: no code
    in the worker can switch it off."""

    ALIGN = 64

    def __init__(self, fd, path, layout, original, names):
        self.fd, self.path, self.layout, self.original, self.names = fd, path, layout, original, names

    @classmethod
    def make(cls, message, tensors, folder):
        if folder is None:
            return None
        names = {}  # tensor key -> (argument position or keyword, schedule field or None)
        for position, tree in enumerate(message["args"]):
            cls._keys(tree, position, None, names)
        for keyword, tree in message["kwargs"].get("$dict", {}).items():
            cls._keys(tree, keyword, None, names)
        if not names:
            return None
        layout, blob, offset = {}, bytearray(), 0
        original = {}
        for key in names:
            tensor = tensors.pop(key)
            data = tensor.numpy().tobytes() if tensor.numel() else b""
            offset = -(-len(blob) // cls.ALIGN) * cls.ALIGN
            blob.extend(b"\0" * (offset - len(blob)))
            blob.extend(data)
            layout[key] = (str(tensor.dtype).removeprefix("torch."), list(tensor.shape), offset, len(data))
            original[key] = data
        import tempfile

        fd, path = tempfile.mkstemp(prefix="inputs-", dir=folder)
        os.write(fd, bytes(blob))
        os.fchmod(fd, 0o666)
        return cls(fd, path, layout, original, names)

    @classmethod
    def _keys(cls, tree, where, field, names):
        if isinstance(tree, list):
            for item in tree:
                cls._keys(item, where, field, names)
        elif isinstance(tree, dict):
            if "$tensor" in tree:
                names[tree["$tensor"]] = (where, field)
            elif "$schedule" in tree:
                for name, item in zip(("betas", "alphas", "alpha_bars"), tree["$schedule"]):
                    cls._keys(item, where, name, names)
            elif "$tuple" in tree:
                cls._keys(tree["$tuple"], where, field, names)
            elif "$dict" in tree:
                for item in tree["$dict"].values():
                    cls._keys(item, where, field, names)

    def describe(self) -> dict:
        return {"path": self.path, "tensors": self.layout}

    def check(self, function: str, parameters) -> None:
        from mini_diffusion._course.host import Outcome

        for key, (dtype, shape, offset, nbytes) in self.layout.items():
            if os.pread(self.fd, nbytes, offset) == self.original[key]:
                continue
            where, field = self.names[key]
            if field is not None:
                raise Outcome(f"{function} changed schedule.{field} in place: the schedule is shared by every "
                              "call and must stay as it was. Compute new tensors instead of editing it.")
            name = where if isinstance(where, str) else (
                parameters[where] if where < len(parameters) else f"argument {where + 1}")
            raise Outcome(f"{function} changed its input `{name}` in place (an operation such as x += …, x.mul_(…) "
                          "or x[...] = …): the caller's tensor must stay as it was. Compute a new tensor "
                          "instead (x = x + …).")

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
        try:
            os.unlink(self.path)
        except OSError:
            pass


def mapped(shared) -> dict:
    """The call's input tensors, as views of the file the judge wrote them to (mapped shared): whatever
    the learner's function writes into them lands in that file, where the judge compares them with its
    own copies after the call."""
    if not shared:
        return {}
    import torch

    size = os.path.getsize(shared["path"])
    if size == 0:
        return {}
    memory = torch.from_file(shared["path"], shared=True, size=size, dtype=torch.uint8)
    found = {}
    for key, (dtype, shape, offset, nbytes) in shared["tensors"].items():
        found[key] = memory[offset:offset + nbytes].view(getattr(torch, dtype)).reshape(shape)
    return found
