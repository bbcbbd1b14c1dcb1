-- A name as the catalogue search compares it: without accents, in lower case ("Pokémon"
-- and "POKEMON" are both "pokemon"). unaccent() is only STABLE (it reads its dictionary
-- by name through the search path); naming the dictionary by schema makes the result
-- depend on the argument alone, so it may be IMMUTABLE and compute a stored column
-- (products.name_key, V13). Changing this body leaves the names already stored folded the
-- old way: recompute them (UPDATE products SET name = name) in the same change.
CREATE OR REPLACE FUNCTION search_key(p_text TEXT)
RETURNS TEXT
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT lower(extensions.unaccent('extensions.unaccent'::regdictionary, p_text))
$$;
