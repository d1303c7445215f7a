"""One planted bug in each module with logic that had none (issue 51's third part): the CLI's
commands and checks, the engine's decoder, cache, logprobs, server client and repack probe,
the record, the history, the server, the store's downloads and the renderers. Each row names
the test written for the behaviour it breaks; `tests/test_benchmarks.py` checks that every
module with logic has a row somewhere in the three tables."""

from __future__ import annotations

from planted import Mutant

WIDE = (
    Mutant(
        "core: the answer's confidence spans every token after the answer too",
        "marco_cli/search/core.py",
        "if b > at and a < at + len(needle)",
        "if b > at",
        ("tests/test_answer_reward.py::test_span_confidence_averages_the_tokens_that_wrote_the_answer",),
    ),
    Mutant(
        "baselines: --greedy-first ignored (every sample sampled)",
        "marco_cli/search/baselines.py",
        "greedy=greedy_all or (config.greedy_first and i == 0)",
        "greedy=greedy_all",
        ("tests/test_pinned_wide.py::test_greedy_first_makes_only_the_first_sample_greedy",),
    ),
    Mutant(
        "tasks: a budget-cut search told to raise --iterations, not --max-tokens",
        "marco_cli/tasks.py",
        "helps.append(f\"a larger {option('max-tokens')}\")",
        "helps.append(f\"more {option('iterations')}\")",
        ("tests/test_cli_solve.py::test_no_answer_says_why",),
    ),
    Mutant(
        "app: a usage error exits 1, not 2",
        "marco_cli/cli/app.py",
        "            sys.exit(exc.exit_code)\n",
        "            sys.exit(1)\n",
        ("tests/test_cli_errors.py::test_usage_errors[children]",),
    ),
    Mutant(
        "export: a run range loses its last run",
        "marco_cli/cli/export.py",
        "ids.extend(range(first, last + 1))",
        "ids.extend(range(first, last))",
        ("tests/test_export.py::test_bad_input_is_a_usage_error_and_writes_nothing",),
    ),
    Mutant(
        "flags: a URL's credentials echoed in its error",
        "marco_cli/cli/flags.py",
        "    return f\"{head.split('://', 1)[0]}://{tail}\"",
        "    return url",
        ("tests/test_cli_errors.py::test_usage_errors[backend with credentials]",),
    ),
    Mutant(
        "history: a piped log row keeps the question's line breaks",
        "marco_cli/cli/history.py",
        'visible(" ".join(row.question.split())),',
        "visible(row.question),",
        ("tests/test_pinned_wide.py::test_a_piped_log_is_one_line_per_run_newest_first",),
    ),
    Mutant(
        "options: --stop-agree 0 kept as 0, not off",
        "marco_cli/cli/options.py",
        'if chosen.get("stop_agree") == 0:',
        'if chosen.get("stop_agree") == -1:',
        ("tests/test_cli_options.py::test_search_flags_reach_the_search_config",),
    ),
    Mutant(
        "option table: --help-all shows no more than --help",
        "marco_cli/cli/option_table.py",
        "            param.hidden = False\n",
        "            pass\n",
        ("tests/test_docs.py::test_help_fits_a_terminal_and_help_all_shows_the_rest[solve]",),
    ),
    Mutant(
        "serve: a bool option given a number accepted",
        "marco_cli/cli/serve.py",
        "return None if isinstance(value, bool) else f\"'{name}' must be true or false, not {shown}\"",
        "return None",
        (
            "tests/test_hostile_server.py::"
            "test_a_hostile_body_gets_its_status_and_a_message_naming_what_was_wrong[bool option as number]",
        ),
    ),
    Mutant(
        "signals: every signal exits 130",
        "marco_cli/cli/signals.py",
        "return 128 + int(self.received)",
        "return 130",
        ("tests/test_terminal.py::test_ctrl_c_sigterm_and_sighup_in_a_terminal[15-143]",),
    ),
    Mutant(
        "translate: several lines' JSON given as the first line's",
        "marco_cli/cli/solve.py",
        "doc = docs[0] if len(lines) == 1 and docs else",
        "doc = docs[0] if docs else",
        ("tests/test_cli_solve.py::test_translate_keeps_one_line_out_per_line_in_when_a_line_fails",),
    ),
    Mutant(
        "contract: a mini-step ignores a smaller --max-tokens",
        "marco_cli/contract.py",
        "return self.max_tokens if mini is None else min(self.max_tokens, mini)",
        "return self.max_tokens if mini is None else mini",
        ("tests/test_pinned_wide.py::test_a_mini_step_is_cut_at_a_smaller_token_budget",),
    ),
    Mutant(
        "kv cache: a shared prefix counted in whole blocks only",
        "marco_cli/engine/kvcache.py",
        "        while n < end and a[n] == b[n]:\n            n += 1\n        return n",
        "        return n",
        ("tests/test_kvcache.py::test_one_slot_is_truncated_to_the_shared_prefix",),
    ),
    Mutant(
        "decoder: CoT-decoding's k-th branch starts with the likeliest token",
        "marco_cli/engine/decoder.py",
        'token = int(top[np.argsort(-row[top], kind="stable")][rank])',
        'token = int(top[np.argsort(-row[top], kind="stable")][0])',
        ("tests/test_branch_vote.py::test_the_real_engine_starts_with_the_kth_likeliest_token",),
    ),
    Mutant(
        "llama: a context above the training length silently capped",
        "marco_cli/engine/llama.py",
        "if asked is not None and asked > self.n_ctx_train:",
        "if asked is not None and asked > 10 * self.n_ctx_train:",
        ("tests/test_pinned_wide.py::test_a_context_above_the_training_length_is_a_usage_error",),
    ),
    Mutant(
        "logprobs: alternatives ranked least likely first",
        "marco_cli/engine/logprobs.py",
        "return sorted(alternatives, key=lambda a: -a.logprob)",
        "return sorted(alternatives, key=lambda a: a.logprob)",
        ("tests/test_llama_server.py::test_first_token_alternatives_are_ranked_in_every_shape",),
    ),
    Mutant(
        "remote: requests in flight together never counted",
        "marco_cli/engine/remote.py",
        "self.max_in_flight = max(self.max_in_flight, self._in_flight)",
        "self.max_in_flight = max(self.max_in_flight, 1)",
        ("tests/test_remote.py::test_remote_search_end_to_end_and_cli",),
    ),
    Mutant(
        "streamed: the stop text a server withholds not put back",
        "marco_cli/engine/streamed.py",
        "text += stop.stop_texts[0]  # the server withholds the stop text it matched",
        "pass  # the server withholds the stop text it matched",
        ("tests/test_remote.py::test_remote_search_end_to_end_and_cli",),
    ),
    Mutant(
        "repack: --no-repack ignored",
        "marco_cli/engine/repack.py",
        "    if forced is not None:\n",
        "    if forced:\n",
        ("tests/test_repack.py::test_forcing_and_cpus_without_amx_need_no_probe",),
    ),
    Mutant(
        "saved: a schema 1 rollout's finished flag ignored",
        "marco_cli/record/saved.py",
        '("finished" if raw.get("finished") else "budget")',
        '"budget"',
        ("tests/test_record.py::test_a_schema_1_record_loads_with_todays_meanings",),
    ),
    Mutant(
        "results: a pair found only in the order it ran",
        "marco_cli/record/results.py",
        "{p.first, p.second} == {a, b}",
        "(p.first, p.second) == (a, b)",
        ("tests/test_pinned_wide.py::test_a_pair_is_found_in_either_order",),
    ),
    Mutant(
        "summary: a tie on both axes called dominated",
        "marco_cli/runs/summary.py",
        "        and (other.accuracy > row.accuracy or other.mean_tokens < row.mean_tokens)\n",
        "",
        ("tests/test_frontier.py::test_dominated_means_as_accurate_for_fewer_tokens",),
    ),
    Mutant(
        "history: marco log lists the oldest runs first",
        "marco_cli/runs/history.py",
        "FROM runs ORDER BY id DESC LIMIT ?",
        "FROM runs ORDER BY id ASC LIMIT ?",
        ("tests/test_pinned_wide.py::test_a_piped_log_is_one_line_per_run_newest_first",),
    ),
    Mutant(
        "protocol: total_tokens leaves out the prompt",
        "marco_cli/server/protocol.py",
        '"total_tokens": prompt_tokens + generated,',
        '"total_tokens": generated,',
        ("tests/test_serve.py::test_a_chat_completion_is_the_search_and_is_in_the_history",),
    ),
    Mutant(
        "runner: every streamed rollout said to have stopped",
        "marco_cli/server/runner.py",
        'how = "finished" if event.finished else "stopped"',
        'how = "stopped"',
        ("tests/test_serve.py::test_a_stream_gives_reasoning_then_the_answer_then_done",),
    ),
    Mutant(
        "download: a pinned sha256 not checked after the download",
        "marco_cli/store/download.py",
        "if part.sha256 is not None and not hashes.matches(path, part.sha256):\n"
        '        raise MarcoError(f"{part.name} failed',
        'if False:\n        raise MarcoError(f"{part.name} failed',
        ("tests/test_download.py::test_sha256_mismatch_is_refused",),
    ),
    Mutant(
        "files: a file where a folder belongs is not said to be one",
        "marco_cli/files.py",
        "    if path.exists() and not path.is_dir():\n"
        '        raise MarcoError(f"{path} is a file, not a folder; name a folder", code=2)\n',
        "",
        ("tests/test_cli_errors.py::test_file_usage_errors",),
    ),
    Mutant(
        "console: ESC passed to the terminal raw",
        "marco_cli/ui/console.py",
        'if chr(c) not in "\\t\\n"}',
        'if chr(c) not in "\\t\\n\\x1b"}',
        ("tests/test_hostile_history.py::test_stored_escape_sequences_are_shown_not_obeyed",),
    ),
    Mutant(
        "html: a '<' in embedded JSON left as is",
        "marco_cli/ui/html.py",
        '.replace("<", "\\\\u003c")',
        "",
        ("tests/test_html.py::test_the_page_is_self_contained_and_escapes_everything",),
    ),
    Mutant(
        "tree view: a node's text shown without escaping its controls",
        "marco_cli/ui/tree_view.py",
        'flat = visible(" ".join(text.split()))',
        'flat = " ".join(text.split())',
        ("tests/test_hostile_history.py::test_the_live_tree_shows_a_node_text_not_obeys_it",),
    ),
    Mutant(
        "charts: a dominated configuration drawn in capitals",
        "marco_cli/ui/charts.py",
        "letters[i % 26] if not row.dominated else letters[i % 26].lower(),",
        "letters[i % 26],",
        ("tests/test_frontier.py::test_dominated_means_as_accurate_for_fewer_tokens",),
    ),
)

# the small modules with a branch or two
SMALL = (
    Mutant(
        "errors: a line break inside a message kept",
        "marco_cli/errors.py",
        '.replace("\\n", "\\\\n")',
        "",
        ("tests/test_pinned_wide.py::test_a_line_break_in_a_quoted_name_keeps_the_error_on_one_line",),
    ),
    Mutant(
        "prompt: a conversation's own system prompt gets a second one",
        "marco_cli/engine/prompt.py",
        '    if out and out[0]["role"] == "system":\n        return out\n',
        "",
        (
            "tests/test_pinned_wide.py::test_a_conversation_keeps_its_own_system_prompt_and_marco_its_template",
        ),
    ),
    Mutant(
        "cpuinfo: the last processor's fields read",
        "marco_cli/engine/cpuinfo.py",
        'return found[0] if found else ""',
        'return found[-1] if found else ""',
        ("tests/test_pinned_wide.py::test_the_first_processors_fields_are_read",),
    ),
    Mutant(
        "snapshots: a copy saved only when it is larger than the budget",
        "marco_cli/engine/snapshots.py",
        "if size > self.budget:",
        "if size < self.budget:",
        ("tests/test_pinned_wide.py::test_a_branch_returned_to_is_restored_from_its_saved_copy_exactly",),
    ),
    Mutant(
        "repack probe: the crash seam never fires",
        "marco_cli/engine/repack_probe.py",
        "        if crash:",
        "        if crash and False:",
        ("tests/test_repack.py::test_a_probe_that_dies_turns_repacking_off_once",),
    ),
    Mutant(
        "gguf: any file taken for a GGUF",
        "marco_cli/store/gguf.py",
        "return handle.read(4) == MAGIC",
        "return bool(handle.read(4))",
        ("tests/test_download.py::test_non_gguf_download_is_refused",),
    ),
    Mutant(
        "paper: its percentages given as fractions of one",
        "marco_cli/runs/paper.py",
        "return None if value is None else value / 100",
        "return value",
        ("tests/test_paper.py",),
    ),
    Mutant(
        "strategies: a strategy's gated rules ignored",
        "marco_cli/search/strategies.py",
        "return next((rule for gate, rule in spec.gated_rules.items() if gate in gates), spec.own_rule)",
        "return spec.own_rule",
        ("tests/test_select.py::test_a_gated_reward_answers_by_a_rule_that_reads_the_gate",),
    ),
    Mutant(
        "spec: a sampling strategy's budget read from the tree's width",
        "marco_cli/search/baselines.py",
        '    budget="samples",\n    branches=sample_count,\n    gated_rules=_GATED,\n)\nDEEPCONF = ',
        '    budget="samples",\n    gated_rules=_GATED,\n)\nDEEPCONF = ',
        ("tests/test_strategy_table.py::test_the_built_in_table_says_what_each_strategy_spends",),
    ),
    Mutant(
        "scoring: the path's confidence used for every reward",
        "marco_cli/search/scoring.py",
        'return self.spec.value == "path"',
        "return True",
        (
            "tests/test_strategy_table.py::"
            "test_the_path_reward_averages_the_whole_path_and_paper_the_rollouts_own_tokens",
        ),
    ),
    Mutant(
        "recording: the last generated token counted as evaluated",
        "marco_cli/search/recording.py",
        "max(len(gen.tokens) - 1, 0)",
        "len(gen.tokens)",
        ("tests/test_pinned_wide.py::test_a_recorded_model_counts_what_a_cache_less_engine_would_evaluate",),
    ),
)
