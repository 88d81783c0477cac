"""Paginators as small objects (STYLE.md rule 7): link header, cursor, offset token, page
number, each with a guard against a repeated token. `HttpConnector.paginate` (http.py) drives
them; a connector only picks one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests

from relay_core.errors import FatalError


class CursorExpired(FatalError):
    """A listing's next-page link (cursor, offset token) was refused after its first page was
    read: it expired, or the listing changed under it. `HttpConnector.window` lists again."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


# --- paginators -------------------------------------------------------------------------------
def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def dig(data: Any, path: str) -> Any:
    """`dig(body, "meta.next")`: a dotted path into parsed JSON, None where it stops."""
    for part in path.split(".") if path else []:
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


class Paginator(ABC):
    """Walks one listing: fetch a page, ask for the next token, build the next request.

    A paginator keeps no state between listings, so one instance may be reused. `pages`
    refuses a token it has already seen (a server bug would otherwise loop forever) and stops
    at `max_pages`."""

    max_pages: int = 10_000

    def pages(self, fetch: Callable[[str, dict[str, Any] | None], requests.Response],
              url: str, params: dict[str, Any] | None) -> Iterator[requests.Response]:
        seen: set[str] = set()
        for _ in range(self.max_pages):
            response = fetch(url, params)
            yield response
            token = self.next_token(response, params)
            if token is None or token == "":
                return
            token = str(token)
            if token in seen:
                raise FatalError(f"{type(self).__name__}: the server sent a pagination token "
                                 "it had already sent; stopped instead of looping. Report "
                                 "this to the ATS vendor; the next run starts again")
            seen.add(token)
            url, params = self.next_request(token, url, params)
        raise FatalError(f"{type(self).__name__}: more than {self.max_pages} pages; stopped")

    @abstractmethod
    def next_token(self, response: requests.Response,
                   params: dict[str, Any] | None) -> str | None:
        """The token of the next page, or None on the last page."""

    @abstractmethod
    def next_request(self, token: str, url: str, params: dict[str, Any] | None
                     ) -> tuple[str, dict[str, Any] | None]:
        """The URL and query parameters that fetch the page `token` names."""


class LinkHeaderPaginator(Paginator):
    """RFC 8288 `Link: <url>; rel="next"` (Greenhouse, GitHub). The URL is followed verbatim:
    Greenhouse v3 refuses a cursor URL with any other query parameter added."""

    def __init__(self, rel: str = "next"):
        self.rel = rel

    def next_token(self, response, params):
        return (response.links.get(self.rel) or {}).get("url")

    def next_request(self, token, url, params):
        return token, None


class CursorPaginator(Paginator):
    """A cursor in the body (`cursor_field`, dotted), sent back as `cursor_param`.

    `has_more_field` (dotted) ends the walk when false even if a cursor is present;
    `only_cursor` sends the cursor alone, without the first request's filters."""

    def __init__(self, cursor_param: str = "cursor", cursor_field: str = "next_cursor",
                 has_more_field: str | None = None, only_cursor: bool = False):
        self.cursor_param, self.cursor_field = cursor_param, cursor_field
        self.has_more_field, self.only_cursor = has_more_field, only_cursor

    def next_token(self, response, params):
        body = _json_or_none(response)
        if self.has_more_field is not None and not dig(body, self.has_more_field):
            return None
        return dig(body, self.cursor_field)

    def next_request(self, token, url, params):
        if self.only_cursor:
            return url, {self.cursor_param: token}
        return url, {**(params or {}), self.cursor_param: token}


class OffsetTokenPaginator(CursorPaginator):
    """An opaque offset token in the body, sent back as `?offset=` (Lever: `next`/`hasNext`)."""

    def __init__(self, offset_param: str = "offset", token_field: str = "next",
                 has_more_field: str | None = "hasNext"):
        super().__init__(cursor_param=offset_param, cursor_field=token_field,
                         has_more_field=has_more_field)


class PageNumberPaginator(Paginator):
    """`?page=N&per_page=M`. The walk ends on a short page, an empty page, or when
    `total_pages_field` (dotted, optional) says this was the last page, or when
    `has_more_field` (dotted, optional; HERP's `hasNextPage`) is false. `records_field`
    (dotted; "" for a bare array) says where the page's records are. `size_param=None`
    sends no page size (an API with a fixed one)."""

    def __init__(self, page_param: str = "page", size_param: str | None = "per_page",
                 page_size: int = 100, first_page: int = 1, records_field: str = "",
                 total_pages_field: str | None = None, has_more_field: str | None = None):
        self.page_param, self.size_param, self.page_size = page_param, size_param, page_size
        self.first_page, self.records_field = first_page, records_field
        self.total_pages_field, self.has_more_field = total_pages_field, has_more_field

    def next_token(self, response, params):
        body = _json_or_none(response)
        records = dig(body, self.records_field) if self.records_field else body
        page = int((params or {}).get(self.page_param, self.first_page))
        if self.has_more_field is not None:
            return str(page + 1) if dig(body, self.has_more_field) is True else None
        if self.total_pages_field is not None:
            total = dig(body, self.total_pages_field)
            return str(page + 1) if isinstance(total, int) and page < total else None
        if not isinstance(records, list) or len(records) < self.page_size:
            return None
        return str(page + 1)

    def next_request(self, token, url, params):
        sized = {self.size_param: self.page_size} if self.size_param else {}
        return url, {**(params or {}), self.page_param: int(token), **sized}
