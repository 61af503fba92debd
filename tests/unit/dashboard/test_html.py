"""The HTML primitives escape every value once, and only markup built here passes through."""

from __future__ import annotations

from aire.dashboard.html import Html, action_button, esc, number, page, path, table, tag


def test_values_are_escaped_quotes_included() -> None:
    assert esc('<b a="1">\'&') == "&lt;b a=&quot;1&quot;&gt;&#x27;&amp;"
    assert esc(None) == ""


def test_markup_built_here_is_not_escaped_twice() -> None:
    inner = tag("b", "<x>")
    assert tag("p", inner) == "<p><b>&lt;x&gt;</b></p>"
    assert esc(inner) is inner


def test_attribute_values_cannot_break_out_of_their_quotes() -> None:
    rendered = tag("a", "t", href='x" onmouseover="alert(1)', data_name="<q>")
    assert rendered == '<a href="x&quot; onmouseover=&quot;alert(1)" data-name="&lt;q&gt;">t</a>'


def test_a_plain_str_is_never_taken_for_markup() -> None:
    assert table(["<h>"], [["<td>", Html("<i>ok</i>")]]) == (
        '<table class="grid"><thead><tr><th>&lt;h&gt;</th></tr></thead>'
        "<tbody><tr><td>&lt;td&gt;</td><td><i>ok</i></td></tr></tbody></table>")


def test_an_empty_table_says_so_across_all_columns() -> None:
    assert '<td colspan="3" class="muted">none</td>' in table(["a", "b", "c"], [], empty="none")


def test_path_segments_are_percent_encoded() -> None:
    assert path("aire_retrain", "manual__2026-12-02T14:15:14+00:00", "../x") == (
        "aire_retrain/manual__2026-12-02T14%3A15%3A14%2B00%3A00/..%2Fx")


def test_numbers_keep_p_values_and_drop_trailing_zeros() -> None:
    assert number(0.75) == "0.75"
    assert number(2.4e-17) == "2.4e-17"
    assert number(True) == "true" and number(None) == "-" and number([]) == "none"


def test_action_buttons_carry_a_json_body_escaped_in_the_attribute() -> None:
    button = action_button("Go", "/aire/x", {"pipeline": '"><script>'}, ask="reason")
    assert 'data-body="{&quot;pipeline&quot;: &quot;\\&quot;&gt;&lt;script&gt;&quot;}"' in button
    assert 'data-ask="reason"' in button and "<script>" not in button
    assert '<input type="text" name="reason" placeholder="reason" aria-label="reason">' in button


def test_a_page_loads_its_script_and_style_from_the_app_only() -> None:
    document = page("T <1>", Html("<p>x</p>"), base="/aire", current="")
    assert document.startswith("<!doctype html><html lang=\"en\">")
    assert '<script src="/aire/static/aire.js" defer></script>' in document
    assert "<title>AIRE · T &lt;1&gt;</title>" in document and "<h1>T &lt;1&gt;</h1>" in document
