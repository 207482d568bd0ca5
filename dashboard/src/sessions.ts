/**
 * Session list page: progressive enhancement only (the list works without it).
 * Shows start times in the viewer's time zone.
 */
import './sessions.css';
import { localiseTimes } from './format';

localiseTimes(document);
