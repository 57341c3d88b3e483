"""The one exception type of the client."""


class MoeAdapterError(Exception):
    """A conversion or call failed. `code` is the grpc.StatusCode (the server's, or the client's
    own: DATA_LOSS for a CRC32C mismatch, INTERNAL for a stream that breaks the framing);
    `message` is the server's message (or the client's, naming the tensor)."""

    def __init__(self, code, message):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
