"""Presentation only: tables, charts (`plots`) and the HTML report (`html`) from results. Nothing here measures."""
