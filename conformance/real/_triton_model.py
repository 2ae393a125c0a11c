"""A Triton python-backend LLM-like model shaped like Triton's vLLM backend (copied as model.py).

This file runs **inside tritonserver's python-backend stub** (it is copied into the model
repository as ``<model>/1/model.py``); it imports only the standard library, numpy and
``triton_python_backend_utils``. The project never imports it.

Interface (the vLLM backend's, ``src/utils/request.py`` there):

* inputs ``text_input`` (string), optional ``stream``, ``exclude_input_in_output``,
  ``sampling_parameters`` (a JSON string; else the request parameters are the JSON), and the
  ``return_finish_reason`` / ``return_cumulative_logprob`` / ``return_num_input_tokens`` /
  ``return_num_output_tokens`` switches;
* outputs ``text_output`` (the delta when streaming, the whole text otherwise, with the prompt
  first unless ``exclude_input_in_output``), ``finish_reason`` (``"None"`` until the last
  response, then ``length`` or ``stop``), ``cumulative_logprob``, ``num_input_tokens`` and
  ``num_output_tokens`` (per response, the EOS step counted as vLLM does);
* decoupled: one response per generated token while streaming, the last one carrying the FINAL
  flag; errors are responses with a ``TritonError`` (before the first token: Triton answers the
  HTTP request with an error status; later: an error event inside the 200 stream).

Generation is deterministic noise: pieces of a fixed vocabulary (words, multi-byte characters,
emoji) drawn from a generator seeded by ``seed`` and the prompt (greedy ``temperature 0`` uses
the prompt alone), with an EOS chance per step and a small per-token delay so streams are real
streams. Sampling parameters are validated as vLLM's ``SamplingParams`` does (``max_tokens >= 1``,
``temperature >= 0``, ``0 < top_p <= 1``, prompt + max_tokens within ``max_model_len``; unknown
keys refused). Config parameters: ``max_model_len``, ``token_delay_ms``, ``eos_per_mille`` and
``fail_after_tokens`` (a model that fails mid-stream, for the error path); the request parameter
``fail_after: N`` (a test hook, not a vLLM knob) fails one request after N tokens with the vLLM
backend's "Error generating stream: ..." message.
"""

# mypy: ignore-errors

from __future__ import annotations

import json
import random
import re
import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils

_PIECES = (
    " the", " a", " model", " token", " stream", " worker", " engine", " answer", " is", " of",
    " and", " to", " llama", " queue", " slot", " cache", " prompt", " reply", " Hello", " world",
    " café", " naïve", " über", " 日本", "語", " Ωmega", "é", "ü", "ß", "€", "中", "—", "…",
    "🙂", "🦙", ".", ",", "!", "?", "\n", " data", " fast", " slow", " over", " Hi",
)  # fmt: skip
_KNOWN = {
    "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "min_tokens", "ignore_eos",
    "presence_penalty", "frequency_penalty", "repetition_penalty", "n", "best_of", "min_p",
    "skip_special_tokens", "include_stop_str_in_output", "logprobs", "stop_token_ids",
}  # fmt: skip
_WORD = re.compile(r"\w+|[^\w\s]|\s+")


class _Invalid(ValueError):
    pass


def _flag(request, name, default=False):
    t = pb_utils.get_input_tensor_by_name(request, name)
    return bool(t.as_numpy().reshape(-1)[0]) if t is not None else default


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value") for k, v in config.get("parameters", {}).items()}
        self.max_model_len = int(params.get("max_model_len") or 4096)
        self.delay = float(params.get("token_delay_ms") or 2) / 1000.0
        self.eos_per_mille = int(params.get("eos_per_mille") or 25)
        self.fail_after = int(params.get("fail_after_tokens") or 0)
        self.threads = []
        self.lock = threading.Lock()

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            t = threading.Thread(target=self._serve, args=(request, sender), daemon=True)
            with self.lock:
                self.threads = [x for x in self.threads if x.is_alive()]
                self.threads.append(t)
            t.start()
        return None

    def finalize(self):
        with self.lock:
            threads = list(self.threads)
        for t in threads:
            t.join(timeout=5)

    # -- one request ----------------------------------------------------------------------
    def _serve(self, request, sender):
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        try:
            job = self._parse(request)
        except _Invalid as exc:
            sender.send(
                pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), flags=final
            )
            return
        try:
            self._generate(job, sender)
        except Exception as exc:  # an engine fault: an error response, never a hung request
            sender.send(
                pb_utils.InferenceResponse(error=pb_utils.TritonError(f"engine error: {exc}")),
                flags=final,
            )

    def _parse(self, request):
        t = pb_utils.get_input_tensor_by_name(request, "text_input")
        raw = t.as_numpy().reshape(-1)[0]
        prompt = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        stream = _flag(request, "stream")
        exclude = pb_utils.get_input_tensor_by_name(request, "exclude_input_in_output")
        prepend = (
            (not _flag(request, "exclude_input_in_output")) if exclude is not None else not stream
        )
        if prepend and stream:
            raise _Invalid("When streaming, `exclude_input_in_output` = False is not allowed.")
        sp = pb_utils.get_input_tensor_by_name(request, "sampling_parameters")
        text = (
            sp.as_numpy().reshape(-1)[0].decode("utf-8") if sp is not None else request.parameters()
        )
        try:
            params = json.loads(text or "{}")
        except ValueError as exc:
            raise _Invalid(f"sampling parameters are not JSON: {exc}") from None
        if not isinstance(params, dict):
            raise _Invalid("sampling parameters must be a JSON object")
        # Test hook (not a vLLM knob): fail the Nth streamed response like a backend error.
        fail_after = params.pop("fail_after", None)
        unknown = sorted(set(params) - _KNOWN)
        if unknown:
            raise _Invalid(f"SamplingParams got an unexpected keyword argument '{unknown[0]}'")
        try:
            max_tokens = int(params.get("max_tokens", 16))
            temperature = float(params.get("temperature", 1.0))
            top_p = float(params.get("top_p", 1.0))
            seed = params.get("seed")
            seed = int(seed) if seed is not None else None
        except (TypeError, ValueError) as exc:
            raise _Invalid(f"invalid sampling parameter: {exc}") from None
        if max_tokens < 1:
            raise _Invalid(f"max_tokens must be at least 1, got {max_tokens}.")
        if temperature < 0:
            raise _Invalid(f"temperature must be non-negative, got {temperature}.")
        if not 0.0 < top_p <= 1.0:
            raise _Invalid(f"top_p must be in (0, 1], got {top_p}.")
        stop = params.get("stop") or []
        if isinstance(stop, str):
            stop = [stop]
        n_in = 1 + len(_WORD.findall(prompt))
        if n_in > self.max_model_len:
            raise _Invalid(
                f"The decoder prompt (length {n_in}) is longer than the maximum model length "
                f"of {self.max_model_len}."
            )
        if n_in + max_tokens > self.max_model_len:
            raise _Invalid(
                f"This model's maximum context length is {self.max_model_len} tokens. However, "
                f"you requested {n_in + max_tokens} tokens ({n_in} in the messages, "
                f"{max_tokens} in the completion). Please reduce the length."
            )
        if temperature == 0:
            rng = random.Random(f"greedy:{prompt}")
        elif seed is not None:
            rng = random.Random(f"{seed}:{prompt}")
        else:
            rng = random.Random()
        try:
            fail_after = int(fail_after) if fail_after is not None else 0
        except (TypeError, ValueError):
            raise _Invalid(f"fail_after must be an integer, got {fail_after!r}") from None
        return {
            "fail_after": fail_after,
            "prompt": prompt,
            "stream": stream,
            "prepend": prepend,
            "max_tokens": max_tokens,
            "stop": [s for s in stop if isinstance(s, str) and s],
            "ignore_eos": bool(params.get("ignore_eos", False)),
            "rng": rng,
            "n_in": n_in,
            "want": {
                name: _flag(request, name)
                for name in (
                    "return_finish_reason",
                    "return_cumulative_logprob",
                    "return_num_input_tokens",
                    "return_num_output_tokens",
                )
            },
        }

    def _response(self, job, text, finish, n_out, logprob):
        tensors = [
            pb_utils.Tensor("text_output", np.asarray([text.encode("utf-8")], dtype=np.object_))
        ]
        want = job["want"]
        if want["return_finish_reason"]:
            tensors.append(
                pb_utils.Tensor("finish_reason", np.asarray([str(finish)], dtype=np.object_))
            )
        if want["return_cumulative_logprob"]:
            tensors.append(
                pb_utils.Tensor("cumulative_logprob", np.asarray([logprob], dtype=np.float32))
            )
        if want["return_num_input_tokens"]:
            tensors.append(
                pb_utils.Tensor("num_input_tokens", np.asarray(job["n_in"], dtype=np.uint32))
            )
        if want["return_num_output_tokens"]:
            tensors.append(
                pb_utils.Tensor("num_output_tokens", np.asarray([n_out], dtype=np.uint32))
            )
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _generate(self, job, sender):
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        rng = job["rng"]
        text = ""
        sent = 0  # characters of ``text`` already streamed
        logprob = 0.0
        finish = None
        n = 0
        pending = 0  # tokens generated since the last response
        while finish is None:
            if sender.is_cancelled():
                sender.send(flags=final)
                return
            if self.fail_after and n >= self.fail_after:
                sender.send(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(
                            f"engine failed after {n} tokens (fail_after_tokens)"
                        )
                    ),
                    flags=final,
                )
                return
            if job["fail_after"] and n >= job["fail_after"]:
                sender.send(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError("Error generating stream: injected failure")
                    ),
                    flags=final,
                )
                return
            time.sleep(self.delay)
            n += 1
            pending += 1
            logprob -= rng.random() * 3.0
            if not job["ignore_eos"] and rng.randrange(1000) < self.eos_per_mille:
                finish = "stop"
            else:
                text += rng.choice(_PIECES)
                for s in job["stop"]:
                    at = text.find(s, max(0, sent - len(s)))
                    if at >= 0:
                        text = text[:at]
                        finish = "stop"
                        break
                if finish is None and n >= job["max_tokens"]:
                    finish = "length"
            if job["stream"]:
                delta = text[sent:]
                # Hold back a delta that might be the start of a stop string (as vLLM does).
                if finish is None and any(
                    s.startswith(text[-k:])
                    for s in job["stop"]
                    for k in range(1, len(s))
                    if len(text) >= k
                ):
                    continue
                sent = len(text)
                response = self._response(job, delta, finish, pending, logprob)
                pending = 0
                if finish is None:
                    sender.send(response)
                else:
                    sender.send(response, flags=final)
        if not job["stream"]:
            full = (job["prompt"] if job["prepend"] else "") + text
            sender.send(self._response(job, full, finish, n, logprob), flags=final)
