"""reasoner.guard: only classes the query's top-level group truly requires become a guard."""
from reasoner.guard import RDF_TYPE as T, required_triples

P = "PREFIX b12: <https://w3id.org/b12kg/>\nPREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#>\n"
B = "https://w3id.org/b12kg/"


def test_top_level_type_patterns_are_required():
    q = P + "CONSTRUCT { ?x a b12:Out } WHERE { ?x a b12:A ; b12:p ?y . ?y rdf:type b12:B . ?z a <urn:C> }"
    assert required_triples(q) == ((T, B + "A"), (T, B + "B"), (T, "urn:C"))


def test_nested_groups_are_not_required():
    q = P + """SELECT ?x WHERE {
      ?x b12:p ?y .
      OPTIONAL { ?y a b12:Opt }
      { ?x a b12:U1 } UNION { ?x a b12:U2 }
      MINUS { ?x a b12:M }
      FILTER NOT EXISTS { ?x a b12:N }
      GRAPH b12:g { ?x a b12:G }
      { SELECT ?x WHERE { ?x a b12:Sub } }
      BIND(IF(EXISTS { ?x a b12:E }, 1, 0) AS ?flag)
    }"""
    assert required_triples(q) == ()


def test_comments_strings_and_comparisons_do_not_confuse_it():
    q = P + """CONSTRUCT { ?x a b12:Out } WHERE {
      # ?x a b12:Commented } {
      ?x b12:label "a b12:InString } {" ; b12:n ?n .
      FILTER(?n < 5 && ?n > 1)
      ?x a b12:Real .
    }"""
    assert required_triples(q) == ((T, B + "Real"),)


def test_undeclared_prefix_gives_no_guard():
    assert required_triples("SELECT ?x WHERE { ?x a ex:Thing }") == ()
    assert required_triples("ASK { ?x a <urn:a> }") == ()  # no WHERE keyword: no guard


def test_constant_predicate_object_pairs():
    q = P + """PREFIX stmt: <https://w3id.org/b12kg/statement/>
    CONSTRUCT { ?i b12:x ?p } WHERE {
      ?oral b12:statement stmt:TX-ORAL-MILD ; b12:patient ?p .
      b12:window b12:cutoffDate ?cut .
      ?x b12:citation/b12:document b12:doc ; b12:kind b12:K , b12:L .
      ?y ^b12:inv b12:Z .
      ?z a b12:A OPTIONAL { ?z a b12:Opt }
    }"""
    assert required_triples(q) == ((B + "statement", B + "statement/TX-ORAL-MILD"), (B + "kind", B + "K"), (T, B + "A"))
