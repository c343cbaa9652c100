"""Writes of the notifications app, one module per concern. Views, admin actions, tasks and
commands call these; they never save notification models themselves."""
