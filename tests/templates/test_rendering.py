"""The pure rendering engine: placeholders, escaping, missing fields, syntax problems, limits, sandbox."""

from __future__ import annotations

import pytest

from mailmerger_templates.filters import first_name, last_name
from mailmerger_templates.rendering import (
    CompiledTemplate,
    MissingFields,
    Rendered,
    Renderer,
    RenderError,
    RenderFailed,
    RenderLimitExceeded,
    RenderLimits,
    RenderRefused,
    RowError,
    TemplateError,
    TemplateInvalid,
    TemplateSource,
)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def compile_html(renderer: Renderer, html: str) -> CompiledTemplate:
    return renderer.compile(TemplateSource(subject="Hello", html=html))


def render_html(renderer: Renderer, html: str, fields: dict[str, object] | None = None) -> str:
    return renderer.render(compile_html(renderer, html), fields or {}).html


def problem_messages(error: TemplateInvalid) -> str:
    return "\n".join(str(problem) for problem in error.problems)


# -- placeholders and escaping ------------------------------------------------------------------


def test_legacy_key_name_placeholders_render_unchanged(renderer: Renderer) -> None:
    """The legacy client's {{key_name}} (no spaces) fills in every part."""
    source = TemplateSource(subject="Hi {{name}}", html="<p>Dear {{name}}</p>", text="Dear {{name}}")
    rendered = renderer.render(renderer.compile(source), {"name": "Ada"})
    assert rendered == Rendered(subject="Hi Ada", html="<p>Dear Ada</p>", text="Dear Ada")


def test_html_body_escapes_values(renderer: Renderer) -> None:
    """Values inserted into the HTML body are HTML-escaped; the template's own markup is not."""
    html = render_html(renderer, "<b>{{ company }}</b>", {"company": '<script>"A&B"</script>'})
    assert html == "<b>&lt;script&gt;&#34;A&amp;B&#34;&lt;/script&gt;</b>"


def test_subject_and_text_insert_values_verbatim(renderer: Renderer) -> None:
    """The subject and the plain-text body are not HTML, so values go in unescaped."""
    source = TemplateSource(subject="{{ company }}", html="x", text="{{ company }}")
    rendered = renderer.render(renderer.compile(source), {"company": "A&B <Co>"})
    assert (rendered.subject, rendered.text) == ("A&B <Co>", "A&B <Co>")


def test_concatenation_in_html_is_escaped(renderer: Renderer) -> None:
    """Text joined with ~ is escaped like any other value in the HTML body."""
    assert render_html(renderer, "{{ a ~ b }}", {"a": "<i>", "b": "&"}) == "&lt;i&gt;&amp;"


def test_text_is_none_without_a_text_template(renderer: Renderer) -> None:
    """With no text template, text is None so the sender derives it from the HTML."""
    assert renderer.render(compile_html(renderer, "x"), {}).text is None


def test_value_containing_template_syntax_is_inserted_literally(renderer: Renderer) -> None:
    """A value is data: {{ … }} or {% … %} inside it is printed, never evaluated."""
    value = "{{ 7 * 7 }}{% for i in range(9) %}x{% endfor %}"
    assert render_html(renderer, "{{ note }}", {"note": value}) == value


def test_none_inside_a_value_prints_as_nothing(renderer: Renderer) -> None:
    """A None inside a structured value prints as an empty string, not "None"."""
    assert render_html(renderer, "[{{ user.city }}]", {"user": {"city": None}}) == "[]"


def test_loop_over_a_list_field_renders_each_item(renderer: Renderer) -> None:
    """{% for %} iterates a list field, with the loop variable and filters available."""
    html = "{% for p in products %}{{ loop.index }}.{{ p.name | upper }} {% endfor %}"
    fields: dict[str, object] = {"products": [{"name": "tea"}, {"name": "cake"}]}
    assert render_html(renderer, html, fields) == "1.TEA 2.CAKE "


def test_set_assigns_a_template_variable(renderer: Renderer) -> None:
    """{% set name = … %} binds a value later placeholders can use."""
    assert render_html(renderer, "{% set n = full | first_name %}Hi {{ n }}", {"full": "Ada L"}) == "Hi Ada"


# -- filters ------------------------------------------------------------------------------------


def test_default_filter_fills_in_a_missing_field(renderer: Renderer) -> None:
    """| default("…") works despite strict undefined handling: the field becomes optional."""
    assert render_html(renderer, 'Hi {{ title | default("there") }}') == "Hi there"


def test_default_filter_keeps_a_present_field(renderer: Renderer) -> None:
    """| default only applies when the field is absent."""
    assert render_html(renderer, 'Hi {{ title | default("there") }}', {"title": "Dr"}) == "Hi Dr"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Ada Lovelace", "Ada"), ("  Ada   King  Lovelace ", "Ada"), ("Cher", "Cher")],
)
def test_first_name_is_the_first_word(renderer: Renderer, name: str, expected: str) -> None:
    """first_name takes the first word, ignoring extra spaces."""
    assert render_html(renderer, "{{ name | first_name }}", {"name": name}) == expected


@pytest.mark.parametrize("name", [None, "", "   "])
def test_name_filters_of_a_blank_value_are_empty(name: str | None) -> None:
    """first_name and last_name of a blank value (still reachable inside a structured value) are empty."""
    assert (first_name(name), last_name(name)) == ("", "")


def test_first_name_of_a_blank_name_is_missing(renderer: Renderer) -> None:
    """A blank name is missing, filter or not: "Hi ," never goes out."""
    with pytest.raises(MissingFields) as caught:
        render_html(renderer, "Hi {{ name | first_name }},", {"name": " "})
    assert caught.value.names == ("name",)


def test_first_name_of_a_defaulted_blank_name_uses_the_default(renderer: Renderer) -> None:
    """A blank name guarded by | default takes the default before first_name splits it."""
    assert (
        render_html(renderer, "Hi {{ name | default('there') | first_name }},", {"name": ""}) == "Hi there,"
    )


@pytest.mark.parametrize(("name", "expected"), [("Ada King Lovelace", "Lovelace"), ("Cher", "")])
def test_last_name_is_the_last_of_two_or_more_words(renderer: Renderer, name: str, expected: str) -> None:
    """last_name takes the last word, and only when the name has at least two."""
    assert render_html(renderer, "{{ name | last_name }}", {"name": name}) == expected


def test_text_filters_change_case_and_trim(renderer: Renderer) -> None:
    """title, lower, upper, capitalize and trim behave as in Jinja."""
    html = "{{ v | title }}|{{ v | lower }}|{{ v | upper }}|{{ v | capitalize }}|{{ v | trim }}"
    assert render_html(renderer, html, {"v": " aDA lovelace "}) == (
        " Ada Lovelace | ada lovelace | ADA LOVELACE | ada lovelace |aDA lovelace"
    )


# -- missing fields -----------------------------------------------------------------------------


def test_missing_fields_are_all_named(renderer: Renderer) -> None:
    """A row lacking several fields fails naming every one of them, not just the first."""
    compiled = renderer.compile(TemplateSource(subject="{{ a }}", html="{{ b }}{{ c }}", text="{{ d }}"))
    with pytest.raises(MissingFields) as caught:
        renderer.render(compiled, {"c": 1})
    assert caught.value.names == ("a", "b", "d")


def test_missing_field_in_an_if_is_still_required(renderer: Renderer) -> None:
    """A field tested by {% if %} must be present (it may be empty)."""
    with pytest.raises(MissingFields) as caught:
        render_html(renderer, "{% if referrer %}x{% endif %}")
    assert caught.value.names == ("referrer",)


def test_missing_nested_value_is_named_with_its_location(renderer: Renderer) -> None:
    """An attribute missing from a structured value fails at render time, naming it and its line."""
    with pytest.raises(MissingFields) as caught:
        render_html(renderer, "line 1\n{{ user.email }}", {"user": {"name": "Ada"}})
    assert (caught.value.names, caught.value.part, caught.value.line) == (("email",), "html", 2)


def test_is_defined_guard_makes_a_field_optional(renderer: Renderer) -> None:
    """A field used only under `is defined` may be absent from the row."""
    assert render_html(renderer, "{% if nick is defined %}{{ nick }}{% endif %}!") == "!"


# -- blank values (empty spreadsheet cells) -------------------------------------------------------

BLANKS = [None, "", "   ", "\t\n"]


@pytest.mark.parametrize("blank", BLANKS)
def test_a_blank_field_is_missing(renderer: Renderer, blank: str | None) -> None:
    """A blank value counts as missing: "Hello Bob at" never goes out for an empty company."""
    with pytest.raises(MissingFields) as caught:
        render_html(renderer, "Hello {{ name }} at {{ company }}", {"name": "Bob", "company": blank})
    assert caught.value.names == ("company",)


def test_blank_and_absent_fields_are_named_together(renderer: Renderer) -> None:
    """A row's blank and absent fields are all named in one error, in field order."""
    compiled = renderer.compile(TemplateSource(subject="{{ a }}", html="{{ b }}{{ c }}", text="{{ d }}"))
    with pytest.raises(MissingFields) as caught:
        renderer.render(compiled, {"a": "", "c": "x", "d": None})
    assert caught.value.names == ("a", "b", "d")


@pytest.mark.parametrize("blank", BLANKS)
def test_a_blank_field_with_a_default_takes_the_default(renderer: Renderer, blank: str | None) -> None:
    """| default("…") fills in a blank value as it does an absent one."""
    html = 'Hello Bob at {{ company | default("your team") }}'
    assert render_html(renderer, html, {"company": blank}) == "Hello Bob at your team"


def test_a_blank_guarded_field_is_still_missing_where_it_is_used_unguarded(renderer: Renderer) -> None:
    """A guard covers its own use only: the same blank field printed elsewhere fails the row, naming it."""
    with pytest.raises(MissingFields) as caught:
        render_html(renderer, "{{ company | default('you') }}, of {{ company }}", {"company": ""})
    assert (caught.value.names, caught.value.part) == (("company",), "html")


def test_a_blank_field_is_not_defined(renderer: Renderer) -> None:
    """`is defined` is false for a blank value, as for an absent one."""
    html = "{% if nick is defined %}({{ nick }}){% else %}-{% endif %}"
    assert (render_html(renderer, html, {"nick": " "}), render_html(renderer, html, {"nick": "Al"})) == (
        "-",
        "(Al)",
    )


@pytest.mark.parametrize("blank", BLANKS)
def test_a_field_the_template_tests_may_be_blank(renderer: Renderer, blank: str | None) -> None:
    """A field tested by {% if %} may be blank: the template says itself what a blank means."""
    html = "Hi{% if referrer %}, sent by {{ referrer }}{% endif %}!"
    assert render_html(renderer, html, {"referrer": blank}) == "Hi!"


def test_a_field_tested_inline_may_be_blank(renderer: Renderer) -> None:
    """A field tested by an inline `… if … else …` may be blank too."""
    assert render_html(renderer, "{{ title if title else 'Hi' }}", {"title": ""}) == "Hi"


def test_a_blank_number_zero_and_false_are_values(renderer: Renderer) -> None:
    """Only None and whitespace-only text are blank: 0 and False are values like any other."""
    assert render_html(renderer, "{{ n }}/{{ flag }}", {"n": 0, "flag": False}) == "0/False"


# -- variables ----------------------------------------------------------------------------------


def test_variables_are_the_sorted_top_level_fields(renderer: Renderer) -> None:
    """variables lists each field across all parts once, sorted, without loop or set variables."""
    source = TemplateSource(
        subject="{{ zeta }}",
        html="{% for item in items %}{{ item.name }}{{ loop.index }}{% endfor %}{% set x = 1 %}{{ x }}",
        text="{{ alpha | default('') }}{{ zeta }}",
    )
    assert renderer.compile(source).variables == ("alpha", "items", "zeta")


def test_required_fields_exclude_guarded_ones(renderer: Renderer) -> None:
    """Fields guarded by | default or `is defined` are variables but not required."""
    compiled = compile_html(renderer, "{{ a | default('') }}{% if b is defined %}{% endif %}{{ c }}")
    assert (compiled.variables, compiled.required_fields) == (("a", "b", "c"), ("c",))


def test_fields_that_may_be_blank_are_the_guarded_and_tested_ones(renderer: Renderer) -> None:
    """may_be_blank lists fields under | default, `is defined` or an {% if %} test, not printed ones."""
    compiled = compile_html(
        renderer, "{{ a | default('') }}{% if b is defined %}{% endif %}{% if c %}{{ c }}{% endif %}{{ d }}"
    )
    assert (compiled.guarded_fields, compiled.may_be_blank) == ({"a", "b"}, {"a", "b", "c"})


# -- syntax problems ----------------------------------------------------------------------------


def test_syntax_error_reports_part_line_and_column(renderer: Renderer) -> None:
    """A parse error names the part, the line and the column of the offending token."""
    with pytest.raises(TemplateInvalid) as caught:
        compile_html(renderer, "<p>\nHello {{ first name }}</p>")
    (problem,) = caught.value.problems
    assert (problem.part, problem.line, problem.column) == ("html", 2, 16)
    assert "got 'name'" in problem.message


def test_tokenizer_error_reports_the_column_where_it_stopped(renderer: Renderer) -> None:
    """An unterminated string is reported at its opening quote."""
    with pytest.raises(TemplateInvalid) as caught:
        renderer.compile(TemplateSource(subject="Hi {{ 'there }}", html="x"))
    (problem,) = caught.value.problems
    assert (problem.part, problem.line, problem.column) == ("subject", 1, 7)


def test_unclosed_block_says_which_end_tag_is_missing(renderer: Renderer) -> None:
    """A missing {% endif %} is reported with advice to close the block."""
    with pytest.raises(TemplateInvalid) as caught:
        compile_html(renderer, "{% if vip %}\nWelcome back")
    assert "endif" in caught.value.problems[0].message


def test_problems_in_every_part_are_reported_together(renderer: Renderer) -> None:
    """Compilation checks every part and lists all their problems at once."""
    source = TemplateSource(subject="{{ }", html="{% if %}", text="{{ x | nope }}")
    with pytest.raises(TemplateInvalid) as caught:
        renderer.compile(source)
    assert [problem.part for problem in caught.value.problems] == ["subject", "html", "text"]


def test_validate_returns_no_problems_for_a_valid_template(renderer: Renderer) -> None:
    """validate returns an empty list when the template compiles."""
    assert renderer.validate(TemplateSource(subject="Hi {{ name }}", html="<p>{{ name }}</p>")) == []


def test_validate_returns_problems_instead_of_raising(renderer: Renderer) -> None:
    """validate returns the same problems compile would raise."""
    problems = renderer.validate(TemplateSource(subject="ok", html="{{ a b }}"))
    assert [(problem.part, problem.line) for problem in problems] == [("html", 1)]


def test_oversize_source_is_refused(renderer: Renderer) -> None:
    """A template over max_source_bytes is refused before it is parsed."""
    big = "é" * (renderer.limits.max_source_bytes // 2 + 1)  # two bytes each in UTF-8
    with pytest.raises(TemplateInvalid) as caught:
        compile_html(renderer, big)
    assert "bytes" in caught.value.problems[0].message


# -- the subject line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line_break", ["\r\n", "\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c"]
)
def test_line_breaks_in_subject_values_become_one_space(renderer: Renderer, line_break: str) -> None:
    """A line break in a value (with the spaces around it) becomes one space: no header injection."""
    compiled = renderer.compile(TemplateSource(subject="Re: {{ topic }}", html="x"))
    topic = f"pricing {line_break}  Bcc: victim@example.com"
    assert renderer.render(compiled, {"topic": topic}).subject == "Re: pricing Bcc: victim@example.com"


def test_an_encoded_word_in_a_value_stays_text(renderer: Renderer) -> None:
    """An RFC 2047 look-alike in a value is inserted as written, never decoded (the sender encodes
    it in turn, so it cannot become a line break in the header)."""
    compiled = renderer.compile(TemplateSource(subject="Hi {{ name }}", html="x"))
    attack = "=?utf-8?q?x=0D=0ABcc:_someone@example.org?="
    assert renderer.render(compiled, {"name": attack}).subject == f"Hi {attack}"


def test_subject_is_stripped(renderer: Renderer) -> None:
    """Leading and trailing whitespace left by values or tags is removed from the subject."""
    compiled = renderer.compile(TemplateSource(subject="{% if x %}\n {{ x }} \n{% endif %}", html="x"))
    assert renderer.render(compiled, {"x": "Hello"}).subject == "Hello"


def test_line_breaks_in_html_and_text_are_kept(renderer: Renderer) -> None:
    """Only the subject is folded; bodies keep their line breaks."""
    compiled = renderer.compile(TemplateSource(subject="s", html="{{ v }}", text="{{ v }}"))
    rendered = renderer.render(compiled, {"v": "a\nb"})
    assert (rendered.html, rendered.text) == ("a\nb", "a\nb")


def test_overlong_subject_is_refused(renderer: Renderer) -> None:
    """A rendered subject over max_subject_chars fails the row."""
    compiled = renderer.compile(TemplateSource(subject="{{ s }}", html="x"))
    with pytest.raises(RenderLimitExceeded) as caught:
        renderer.render(compiled, {"s": "x" * 999})
    assert caught.value.part == "subject"


# -- batches and runtime errors -----------------------------------------------------------------


def test_batch_keeps_row_order_and_isolates_failures(renderer: Renderer) -> None:
    """render_batch returns one result per row, in order; failing rows become RowErrors."""
    compiled = compile_html(renderer, "{{ 100 // n }}")
    results = renderer.render_batch(compiled, [{"n": 1}, {}, {"n": 0}, {"n": 4}])
    assert [result.html if isinstance(result, Rendered) else None for result in results] == [
        "100",
        None,
        None,
        "25",
    ]
    errors = [result for result in results if isinstance(result, RowError)]
    assert [(error.index, type(error.error)) for error in errors] == [(1, MissingFields), (2, RenderFailed)]


def test_batch_survives_a_row_with_non_text_keys(renderer: Renderer) -> None:
    """A malformed row (a non-string key) fails alone."""
    compiled = compile_html(renderer, "{{ a }}")
    results = renderer.render_batch(compiled, [{"a": 1, 2: "x"}, {"a": 2}])  # type: ignore[dict-item]
    assert isinstance(results[0], RowError)
    assert results[1] == Rendered(subject="Hello", html="2", text=None)


def test_runtime_failure_reports_part_and_line(renderer: Renderer) -> None:
    """An error raised by the template's own logic says where it happened."""
    with pytest.raises(RenderFailed) as caught:
        render_html(renderer, "one\ntwo\n{{ 1 / zero }}", {"zero": 0})
    assert (caught.value.part, caught.value.line) == ("html", 3)
    assert "division by zero" in str(caught.value)


def test_template_from_another_renderer_is_rejected(renderer: Renderer) -> None:
    """A compiled template is bound to the renderer (and limits) that compiled it."""
    with pytest.raises(ValueError, match="another Renderer"):
        renderer.render(compile_html(Renderer(), "x"), {})


def test_render_limits_must_be_positive() -> None:
    """A zero or negative limit is a configuration error."""
    with pytest.raises(ValueError, match="max_range"):
        RenderLimits(max_range=0)


# -- limits -------------------------------------------------------------------------------------


def test_oversize_body_output_is_refused() -> None:
    """Output past max_body_chars stops the render as soon as it is produced."""
    renderer = Renderer(RenderLimits(max_body_chars=1000))
    compiled = compile_html(renderer, "{% for i in range(100) %}{{ chunk }}{% endfor %}")
    with pytest.raises(RenderLimitExceeded, match="longer than 1000"):
        renderer.render(compiled, {"chunk": "x" * 50})


@pytest.mark.timeout(5)
def test_loop_iterations_are_capped_across_all_loops(renderer: Renderer) -> None:
    """Nested loops that each stay under the range cap still stop at max_loop_iterations in total."""
    html = "{% for a in range(5000) %}{% for b in range(5000) %}{% endfor %}{% endfor %}"
    with pytest.raises(RenderLimitExceeded, match="loops ran more than 10000"):
        render_html(renderer, html)


@pytest.mark.timeout(5)
def test_time_budget_stops_a_loop_that_prints_nothing() -> None:
    """With iteration caps lifted, the clock still stops a silent loop within the time budget."""
    renderer = Renderer(RenderLimits(max_range=10**9, max_loop_iterations=10**12, max_render_seconds=0.05))
    html = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(RenderLimitExceeded, match="longer than 50 ms"):
        render_html(renderer, html)


@pytest.mark.timeout(5)
def test_repeated_concatenation_is_capped(renderer: Renderer) -> None:
    """Doubling a value with {% set %} and ~ stops at the value-size cap instead of exhausting memory."""
    html = "{% set b = a ~ a %}{% set c = b ~ b %}{% set d = c ~ c %}{{ d | length }}"
    with pytest.raises(RenderLimitExceeded, match="values are limited"):
        render_html(renderer, html, {"a": "x" * 300_000})


# -- server-side template injection -------------------------------------------------------------

_COMPILE_REFUSALS = [
    ("class_mro", "{{ ''.__class__.__mro__ }}", "internal attribute"),
    ("subclasses", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "internal attribute"),
    ("attr_filter", "{{ ''|attr('__class__') }}", "unknown filter 'attr'"),
    ("getitem_dunder", "{{ x['__class__'] }}", "internal attribute"),
    ("private_name", "{{ _secret }}", "reserved"),
    ("include", "{% include 'other.html' %}", "cannot use other templates"),
    ("import", "{% import 'macros.html' as m %}", "cannot use other templates"),
    ("from_import", "{% from 'macros.html' import m %}", "cannot use other templates"),
    ("extends", "{% extends 'base.html' %}", "cannot use other templates"),
    ("macro", "{% macro m() %}{{ m() }}{% endmacro %}", "{% macro %} is not supported"),
    ("block_set", "{% set x %}{{ y }}{% endset %}", "is not supported"),
    ("recursive_loop", "{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}", "recursive loops"),
    ("autoescape_off", "{% autoescape false %}{{ x }}{% endautoescape %}", "escaping is always on"),
    ("cycler", "{{ cycler('a', 'b').next() }}", "cycler() is not a function"),
    ("joiner", "{{ joiner(',')() }}", "joiner() is not a function"),
    ("namespace", "{% set ns = namespace(n=0) %}", "namespace() is not a function"),
    ("lipsum", "{{ lipsum(10**9) }}", "lipsum() is not a function"),
    ("self", "{{ self }}", "'self' is reserved"),
    ("self_blocks", "{% block b %}{% endblock %}{{ self.b() }}", "reserved"),
    ("dict_global", "{{ dict(a=1) }}", "dict() is not a function"),
    ("nested_literals", "{% set b = [a, a] %}", "fixed text or numbers"),
    ("deep_ifs", "{% if a %}" * 200 + "{% endif %}" * 200, "nests more than 32 levels"),
    ("deep_unary", "{{ " + "-" * 300 + "a }}", "nests more than 32 levels"),
    ("deep_parentheses", "{{ " + "(" * 400 + "a" + ")" * 400 + " }}", "nested too deeply"),
    ("many_nested_loops", "{% for a in x %}" * 25 + "{% endfor %}" * 25, "nested too deeply"),
]


# The timeouts are hang guards, not timing assertions: each payload is stopped in milliseconds.
@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    ("html", "reason"),
    [pytest.param(html, reason, id=name) for name, html, reason in _COMPILE_REFUSALS],
)
def test_injection_payload_is_refused_before_it_can_run(renderer: Renderer, html: str, reason: str) -> None:
    """Payloads the policy can see are refused at compile time with a reason, so they never run."""
    with pytest.raises(TemplateInvalid) as caught:
        compile_html(renderer, html)
    assert reason in problem_messages(caught.value)


_RENDER_REFUSALS: list[tuple[str, str, dict[str, object], type[RenderError], str]] = [
    ("format_map", "{{ '{0.__class__}'.format_map(x) }}", {"x": {}}, RenderRefused, "'format_map'"),
    ("format", "{{ '{0.__class__.__init__.__globals__}'.format(x) }}", {"x": 1}, RenderRefused, "'format'"),
    ("dunder_by_data", "{{ x[key] }}", {"x": "x", "key": "__class__"}, RenderRefused, "internal"),
    ("mutation", "{{ items.append(1) }}", {"items": []}, RenderRefused, "'append'"),
    ("center", "{{ 'a'.center(10**9) }}", {}, RenderRefused, "'center'"),
    ("replace", "{{ a.replace('', a) }}", {"a": "xx"}, RenderRefused, "'replace'"),
    ("str_join", "{{ a.join(range(9999)) }}", {"a": "x"}, RenderRefused, "'join'"),
    ("percent_format", "{{ '%0999999999d' % 1 }}", {}, RenderRefused, "'%' formatting"),
    ("list_arithmetic", "{{ items + items }}", {"items": [1]}, RenderRefused, "numbers and text only"),
    ("print_range", "{{ range(10**9) }}", {}, RenderLimitExceeded, "at most 10000 numbers"),
    ("loop_range", "{% for i in range(10**9) %}{% endfor %}", {}, RenderLimitExceeded, "at most 10000"),
    (
        "nested_ranges",
        "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}",
        {},
        RenderLimitExceeded,
        "at most 10000",
    ),
    ("text_repetition", "{{ 'a' * 10**9 }}", {}, RenderLimitExceeded, "values are limited"),
    ("tower_of_powers", "{{ 10**10**10 }}", {}, RenderLimitExceeded, "larger than 128 bits"),
    ("huge_power", "{{ 2**(2**100) }}", {}, RenderLimitExceeded, "larger than 128 bits"),
    ("repeated_squaring", "{{ x*x*x*x*x*x*x*x*x*x }}", {"x": 10**20}, RenderLimitExceeded, "128 bits"),
]


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    ("html", "fields", "error", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in _RENDER_REFUSALS],
)
def test_injection_payload_is_stopped_at_render_with_a_reason(
    renderer: Renderer, html: str, fields: dict[str, object], error: type[RenderError], reason: str
) -> None:
    """Payloads only the data can reveal are stopped by the sandbox or a limit, quickly, with a reason."""
    compiled = compile_html(renderer, html)
    with pytest.raises(error) as caught:
        renderer.render(compiled, fields)
    assert reason in str(caught.value)
    assert caught.value.part == "html"


def test_methods_outside_the_allowlist_are_never_called(renderer: Renderer) -> None:
    """A method the allowlist lacks is refused before the call: its code never runs."""
    calls: list[str] = []

    class Contact:
        def delete(self) -> str:
            calls.append("delete")
            return "deleted"

    with pytest.raises(RenderRefused, match="'delete'"):
        render_html(renderer, "{{ contact.delete() }}", {"contact": Contact()})
    assert calls == []


@pytest.mark.parametrize("name", ["config", "request"])
def test_framework_globals_are_just_missing_fields(renderer: Renderer, name: str) -> None:
    """config and request are not defined by the engine: without such a field the row fails."""
    with pytest.raises(MissingFields) as caught:
        render_html(renderer, f"{{{{ {name} }}}}")
    assert caught.value.names == (name,)


def test_a_field_named_like_a_framework_global_is_plain_data(renderer: Renderer) -> None:
    """A field called config is the row's own value, printed like any other."""
    assert render_html(renderer, "{{ config }}", {"config": "<dark>"}) == "&lt;dark&gt;"


def test_every_engine_error_is_a_template_error() -> None:
    """Callers can catch TemplateError for anything the engine raises on purpose."""
    assert issubclass(TemplateInvalid, TemplateError)
    assert issubclass(RenderError, TemplateError)
