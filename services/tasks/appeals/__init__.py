"""Appeals of rejections (fair review): the worker's appeal, the requester's answer."""
