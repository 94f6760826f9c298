"""depset: a node with direct elements and transitive children, flattened on to_list().

A depset is a struct marked by `_strata_depset__`; its `to_list` closure is its
identity (a function value hashes by identity), so a walk can skip a child it
has seen without asking the engine for an id (that was a call into Python a
depset: 177,000 of them, 0.2-0.3 s of the 3.3 s analysis of a 58,000-file
workspace). `to_list()` walks without recursion, in Bazel's orders, and drops
duplicates.
"""

load(":types.bzl", "type__")


def is_depset__(x):
    return type(x) == "struct" and hasattr(x, "_strata_depset__")


def depset(direct=None, order="default", transitive=None, items=None):
    if items != None and direct == None:
        direct = items
    if order not in ("default", "postorder", "preorder", "topological"):
        fail(
            "depset: unknown order (got %r); use default, postorder, preorder or topological"
            % order
        )
    if direct != None and not is_depset__(direct) and type(direct) not in ("list", "tuple"):
        fail("depset: got value of type '%s', want depset or sequence" % type(direct))
    d = tuple(direct.to_list() if is_depset__(direct) else (direct or []))
    for x in transitive or []:
        if not is_depset__(x):
            fail("depset: 'transitive' must be a list of depsets (got %s)" % type(x))
        if "default" not in (order, x._order) and order != x._order:
            # Bazel 4.2.3's words: only "default" mixes with another order
            fail("depset: Order '%s' is incompatible with order '%s'" % (order, x._order))
    t = tuple([x for x in (transitive or []) if x._direct or x._transitive])
    elem = _element_type(d, t)
    holder = []

    def to_list():
        return _flatten(holder[0])

    me = struct(
        _strata_depset__=True,
        _direct=d,
        _transitive=t,
        _order=order,
        _elem=elem,
        to_list=to_list,
    )
    holder.append(me)
    return me


def _element_type(direct, transitive):
    """(type, an element of it) of a depset's elements, None when it has none. As Bazel:
    one type a depset (the first element's), and no mutable values."""
    kinds = {type(e): e for e in direct}
    if "list" in kinds or "dict" in kinds:
        fail("depset: depset elements must not be mutable values")
    found = list(kinds.items()) + [x._elem for x in transitive if x._elem]
    for kind, sample in found[1:]:
        if kind != found[0][0]:
            fail(
                "depset: cannot add an item of type '%s' to a depset of '%s'"
                % (type__(sample), type__(found[0][1]))
            )
    return found[0] if found else None


def _flatten(root):
    """Iterative walk (no recursion), duplicates dropped, Bazel's orders (checked against
    Bazel 4.2.3 on shared children and repeated elements, tests/fixtures/engine/conformance
    app:orders)."""
    seen = {}
    seen_nodes = {}
    out = []
    preorder = root._order == "preorder"
    topo = root._order == "topological"
    stack = [(root, False)]
    post = []
    for _ in range(1 << 30):
        if not stack:
            break
        node, expanded = stack.pop()
        if expanded:
            post.append(node)
            continue
        if node.to_list in seen_nodes:
            continue
        seen_nodes[node.to_list] = True
        if preorder:
            post.append(node)
            for child in reversed(node._transitive):
                stack.append((child, False))
        else:
            stack.append((node, True))
            children = node._transitive
            if topo:
                children = list(children)
            else:
                children = reversed(children)
            for child in children:
                stack.append((child, False))
    if topo:
        # Bazel's link order: the postorder walk above takes children last first; its
        # nodes' elements, each node's last first, deduplicated, then the whole reversed.
        for node in post:
            for e in reversed(node._direct):
                if e not in seen:
                    seen[e] = True
                    out.append(e)
        return list(reversed(out))
    for node in post:
        for e in node._direct:
            if e not in seen:
                seen[e] = True
                out.append(e)
    return out


def to_list__(x):
    """A list from a depset, list, tuple or None."""
    if x == None:
        return []
    if is_depset__(x):
        return x.to_list()
    return list(x)
