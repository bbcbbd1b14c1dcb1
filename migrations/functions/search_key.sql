-- A name as the catalogue search compares it: without accents, in lower case ("Pokémon"
-- and "POKEMON" are both "pokemon"). unaccent() is only STABLE (it reads its dictionary
-- by name through the search path); naming the dictionary by schema makes the result
-- depend on the argument alone, so it may be IMMUTABLE and back an index
-- (products_name_search_idx, V13). Changing this body changes what that index holds:
-- rebuild the index in the same migration.
CREATE OR REPLACE FUNCTION search_key(p_text TEXT)
RETURNS TEXT
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT lower(extensions.unaccent('extensions.unaccent'::regdictionary, p_text))
$$;
