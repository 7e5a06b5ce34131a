"""What one request may ask of the server, in one place, with the reason for each limit.

The API schemas, the UI and the service read these; a request over a limit gets a 4xx (API: 413 or 422 JSON, UI: an
error message) that names the limit. Each is generous for real use: they exist so that one request cannot take
the server's memory or hold the queue for minutes.
"""

from __future__ import annotations

MiB = 1024 * 1024

MAX_REQUEST_BYTES = 256 * MiB
"""One HTTP request body, on every route. Several 4096x4096 PNG init or ControlNet images in base64 fit (a noisy
one is about 65 MB); the body is refused with 413 as soon as its Content-Length (or the bytes read) pass this, so
a 300 MB prompt no longer reaches the parser."""

MAX_PROMPT_CHARS = 40_000
"""Each prompt field (prompt, negative_prompt, hr_prompt, hr_negative_prompt) after the client sent it. A1111
users paste long prompts: 20 000 characters of tags are about 64 chunks of 75 tokens and encode in a second or
two. Measured on main: a 100 000-character prompt held the queue for 52 s."""

MAX_PROMPT_CHUNKS = 200
"""Chunks of 75 tokens in one prompt after tokenizing (each BREAK starts a new chunk). Every chunk is one text-
encoder pass and widens every cross-attention of every step; 40 000 characters of ordinary text are about 130.
Text that is mostly punctuation can reach one token per character, which this catches."""

MAX_PROMPT_BREAKS = MAX_PROMPT_CHUNKS - 1
"""BREAK keywords in one prompt: each one starts a chunk, so more could never fit MAX_PROMPT_CHUNKS (checked
before the job is queued; 1000 BREAKs held the queue for 79 s on main)."""

MAX_PROMPT_AND_PARTS = 32
"""Sub-prompts joined with AND (composable diffusion). Each one is another UNet evaluation at every step."""

MAX_PROMPT_SCHEDULED_PARTS = 100
"""Prompt-editing ``[from:to:when]`` and alternation ``[a|b]`` groups in one prompt."""

MAX_JOB_PROMPT_CHUNKS = 4_096
"""Chunks of conditioning one generation pass keeps, over all the distinct per-step prompts that prompt editing,
alternation and AND produce: each distinct chunk is encoded once, but every distinct prompt keeps its whole
conditioning (a chunk is 0.12 MB for SD 1.x, 0.32 MB for SDXL in fp16; twice that in fp32). A 20 000-character
prompt with alternations [a|b] [c|d|e] [f|g|h|i|j] (30 different prompts, about 2 400 chunks) fits; a prompt at
MAX_PROMPT_CHUNKS with them (6 000) does not."""

FINISHED_JOBS_KEEP_BYTES = 256 * MiB
"""Images of finished jobs the queue keeps for lookups by task id, counted from their pixel buffers. Whoever
submitted a job (an API request, a page's Generate) holds it until it has taken the result, so nothing a client
can still fetch is dropped; the oldest finished jobs go first. On main the last 256 jobs were kept whatever their
size (a 4000x4000 extras result is 64 MB in memory)."""

FINISHED_JOBS_KEEP_COUNT = 256
"""Finished jobs kept for lookups by task id, however small."""
